from django.db import transaction
from django.utils.decorators import method_decorator


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class OutsideRequestTransaction:
    """For views that wait on the network (AI providers, FCM, token endpoints).

    ATOMIC_REQUESTS would hold a transaction open for the whole call — on SQLite, the
    database's write lock — and roll back records that must survive an error response (a
    failed generation, a failed connection test). Such views run outside it; their services
    open short transactions of their own.
    """

    def dispatch(self, request, *args, **kwargs):
        if transaction.get_connection().in_atomic_block:
            # Inside a transaction someone else opened (a test case, code wrapping requests):
            # confine this request to a savepoint, as ATOMIC_REQUESTS would, so that an error
            # response rolls back only what this request wrote.
            with transaction.atomic():
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)
