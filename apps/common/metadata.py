"""What `OPTIONS` answers on every route: DRF's description of the view and its fields.

DRF's own SimpleMetadata checks object permissions by calling `get_object()` for PUT, which
a view without a queryset (the Firebase connection, say) cannot answer: a 500. Here object
permissions are checked only where the view has objects to look up; an error of ours that
says the caller may not act is, as in DRF, a reason to leave the action out.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import clone_request

from apps.common.errors import ApplicationError


class Metadata(SimpleMetadata):
    def determine_actions(self, request, view):
        actions = {}
        for method in {"PUT", "POST"} & set(view.allowed_methods):
            view.request = clone_request(request, method)
            try:
                view.check_permissions(view.request)
                if method == "PUT" and _has_objects(view):
                    view.check_object_permissions(view.request, view.get_object())
            except (exceptions.APIException, ApplicationError, PermissionDenied, Http404):
                continue
            else:
                actions[method] = self.get_serializer_info(view.get_serializer())
            finally:
                view.request = request
        return actions


def _has_objects(view) -> bool:
    lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
    return getattr(view, "queryset", None) is not None and lookup in view.kwargs
