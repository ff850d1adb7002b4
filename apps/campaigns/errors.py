from apps.common.errors import Conflict


class InvalidTransition(Conflict):
    code = "INVALID_TRANSITION"
    message = "This state change is not allowed."

    def __init__(self, current: str, target: str, allowed: list[str]) -> None:
        super().__init__(
            f"Cannot go from '{current}' to '{target}'.",
            details={"from": current, "to": target, "allowed": sorted(allowed)},
        )


class CampaignLocked(Conflict):
    code = "CAMPAIGN_LOCKED"
    message = (
        "Contents, target, delivery options and schedule can only be changed while the "
        "campaign is a draft; unschedule it first."
    )


class CampaignActive(Conflict):
    code = "CAMPAIGN_ACTIVE"
    message = "A scheduled or running campaign cannot be deleted; cancel it first."


class FrequencyCapExceeded(Conflict):
    code = "FREQUENCY_CAP_EXCEEDED"
    message = "The schedule would send to a topic more often than the workspace's cap allows."
