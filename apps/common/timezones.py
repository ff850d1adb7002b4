from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_timezone(name: str) -> bool:
    """IANA names only; `zoneinfo` alone would also accept file paths and odd spellings."""
    return isinstance(name, str) and name in known_timezones()


def get_zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
