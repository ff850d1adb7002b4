"""Helpers for tests and benchmarks: an audience spread over the world."""

# Thirty zones across every continent and offset family (half hours, the date line, a
# fixed-offset Etc zone, places with and without DST, southern-hemisphere DST).
SAMPLE_ZONES = [
    "Europe/Paris", "Europe/London", "Europe/Berlin", "Europe/Madrid", "Europe/Lisbon",
    "Europe/Moscow", "America/New_York", "America/Chicago", "America/Denver",
    "America/Los_Angeles", "America/Sao_Paulo", "America/Argentina/Buenos_Aires",
    "America/Mexico_City", "America/Toronto", "Asia/Tokyo", "Asia/Seoul", "Asia/Shanghai",
    "Asia/Kolkata", "Asia/Dubai", "Asia/Singapore", "Asia/Jakarta", "Australia/Sydney",
    "Australia/Perth", "Pacific/Auckland", "Africa/Cairo", "Africa/Lagos",
    "Africa/Johannesburg", "Etc/GMT+5", "Atlantic/Reykjavik", "Pacific/Honolulu",
]  # fmt: skip
