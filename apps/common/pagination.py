from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M`; M defaults to 20 and is clamped to 100, never refused."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
