"""Every write and every rule of the `ai` app: `generation` (AI copy, with retries and a
repair attempt; translations of a title and subtitle) and `templates`. Other apps and the API call the names below."""

from apps.ai.services.generation import (
    generate_notification_content,
    offline_notice,
    translate_content,
    translated,
)
from apps.ai.services.templates import (
    create_template,
    delete_template,
    save_variant_as_template,
    seed_example_templates,
    update_template,
)

__all__ = [
    "create_template",
    "delete_template",
    "generate_notification_content",
    "offline_notice",
    "save_variant_as_template",
    "seed_example_templates",
    "translate_content",
    "translated",
    "update_template",
]
