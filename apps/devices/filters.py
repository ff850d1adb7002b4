import django_filters

from apps.devices.models import Device, DeviceStatus, Platform


class DeviceFilter(django_filters.FilterSet):
    """The team's device list: exact platform, status, zone and language (a value that is not
    a choice, or text PostgreSQL cannot hold, is a 400 naming the parameter)."""

    platform = django_filters.ChoiceFilter(choices=Platform.choices)
    status = django_filters.ChoiceFilter(choices=DeviceStatus.choices)
    time_zone = django_filters.CharFilter()
    language = django_filters.CharFilter()

    class Meta:
        model = Device
        fields: list[str] = []
