"""The API representations of a list's rows, kept in this process per row version.

A page of 50 campaigns spent most of its time making what had not changed since the page
before: their contents read again, 50 rows serialized field by field, 60 KB encoded. A model
whose database raises a `row_version` on every write of what its representation shows (the
campaigns' triggers) can instead be listed as `(pk, row_version)` pairs: the representation
of a pair seen before is the JSON made then (`Encoded`, written into the answer as it is);
only the others are loaded — in one query — serialized and kept.

A version never comes back with other values, so an entry is never stale: it is only
superseded, and the oldest entries leave first once there are `size` of them. The key holds
the output time zone too (date-times are written in it). Inside fastread.drf_output() nothing
is kept or reused: the tests that compare with DRF's own output get DRF's.
"""

import threading

from django.utils import timezone

from apps.common import fastread
from apps.common.renderers import Encoded, JSONRenderer


class VersionedRepresentations:
    def __init__(self, serializer_class, *, size: int = 4096) -> None:
        self.serializer_class = serializer_class
        self.size = size
        self._entries: dict = {}
        self._lock = threading.Lock()

    def of(self, versions, queryset) -> list:
        """The representations of the rows `versions` names — `(pk, row_version)` pairs, in
        the page's order — those not kept loaded from `queryset` (which reads what the
        serializer needs). A row gone meanwhile is left out; one written meanwhile is shown
        as it is now."""
        pks = [pk for pk, _ in versions]
        if not fastread.enabled():
            return self.serializer_class(self._loaded(queryset, pks), many=True).data
        zone = timezone.get_current_timezone()
        shown = [self._entries.get((pk, version, zone)) for pk, version in versions]
        missing = [pk for pk, kept in zip(pks, shown, strict=True) if kept is None]
        if missing:
            made = self._make(self._loaded(queryset, missing), zone)
            shown = [kept or made.get(pk) for pk, kept in zip(pks, shown, strict=True)]
        return [representation for representation in shown if representation is not None]

    def _make(self, instances, zone) -> dict:
        """Serialize and keep `instances`: {pk: Encoded}."""
        data = self.serializer_class(instances, many=True).data
        render = JSONRenderer().render
        made = {
            instance.pk: Encoded(render(item))
            for instance, item in zip(instances, data, strict=True)
        }
        with self._lock:
            for instance in instances:
                self._entries[(instance.pk, instance.row_version, zone)] = made[instance.pk]
            while len(self._entries) > self.size:
                del self._entries[next(iter(self._entries))]
        return made

    @staticmethod
    def _loaded(queryset, pks) -> list:
        """The rows of `pks` that still exist, in that order."""
        by_pk = {instance.pk: instance for instance in queryset.filter(pk__in=pks)}
        return [by_pk[pk] for pk in pks if pk in by_pk]
