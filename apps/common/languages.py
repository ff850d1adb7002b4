"""Language tags (BCP 47): one spelling for each tag, and the best of a workspace's languages
for a device's.

Apps report what the platform gives them: `en-US` on iOS and the web, `en_US` from older
Android code. Both mean the same language, so both are accepted and written one way
(language lower case, script title case, region upper case: `zh-Hant-TW`). Private-use and
grandfathered tags are refused: nobody translates into them.
"""

import re
from collections.abc import Sequence

MAX_TAG_LENGTH = 35
# language [-script] [-region] [-variant]*, the part of RFC 5646 that real locales use.
_TAG = re.compile(
    r"(?P<language>[a-z]{2,3})"
    r"(?:-(?P<script>[a-z]{4}))?"
    r"(?:-(?P<region>[a-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)"
)


def normalize_language(tag) -> str | None:
    """The tag in its one spelling, or None when it is not a language tag."""
    if not isinstance(tag, str) or not 2 <= len(tag) <= MAX_TAG_LENGTH:
        return None
    match = _TAG.fullmatch(tag.replace("_", "-").lower())
    if match is None:
        return None
    parts = [match["language"]]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    parts += [variant for variant in match["variants"].split("-") if variant]
    return "-".join(parts)


def best_language(tag: str, available: Sequence[str], default: str) -> str:
    """Which of `available` (normalized tags) a device speaking `tag` should get.

    The same tag; else the longest available tag that `tag` extends (`pt` for `pt-BR`,
    `zh-Hant` for `zh-Hant-TW`); else the first available tag of the same language (`pt-BR`
    for `pt-PT`); else `default`.
    """
    if tag in available:
        return tag
    extended = [a for a in available if tag.startswith(a + "-")]
    if extended:
        return max(extended, key=len)
    primary = tag.split("-", 1)[0]
    for candidate in available:
        if candidate.split("-", 1)[0] == primary:
            return candidate
    return default
