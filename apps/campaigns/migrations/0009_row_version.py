from django.db import migrations, models

# Every write of a campaign or of one of its contents raises the campaign's row_version, in
# the database, so that no write path (save(), update(), bulk_create(), a cascade's SET_NULL,
# raw SQL) can change what the API shows without changing the version it is cached under.
POSTGRESQL = (
    [
        """
        CREATE FUNCTION campaigns_campaign_next_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.row_version := OLD.row_version + 1;
            RETURN NEW;
        END $$
        """,
        """
        CREATE TRIGGER campaigns_campaign_version BEFORE UPDATE ON campaigns_campaign
        FOR EACH ROW EXECUTE FUNCTION campaigns_campaign_next_version()
        """,
        """
        CREATE FUNCTION campaigns_content_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                UPDATE campaigns_campaign SET row_version = row_version + 1
                WHERE id = OLD.campaign_id;
            END IF;
            IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.campaign_id <> OLD.campaign_id) THEN
                UPDATE campaigns_campaign SET row_version = row_version + 1
                WHERE id = NEW.campaign_id;
            END IF;
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER campaigns_content_version
        AFTER INSERT OR UPDATE OR DELETE ON campaigns_campaigncontent
        FOR EACH ROW EXECUTE FUNCTION campaigns_content_version()
        """,
    ],
    [
        "DROP TRIGGER campaigns_content_version ON campaigns_campaigncontent",
        "DROP FUNCTION campaigns_content_version()",
        "DROP TRIGGER campaigns_campaign_version ON campaigns_campaign",
        "DROP FUNCTION campaigns_campaign_next_version()",
    ],
)

# SQLite has no BEFORE trigger that can change NEW: an AFTER trigger writes the version again
# (it does not fire itself: recursive_triggers is off, SQLite's default and Django's).
SQLITE = (
    [
        """
        CREATE TRIGGER campaigns_campaign_version AFTER UPDATE ON campaigns_campaign
        FOR EACH ROW BEGIN
            UPDATE campaigns_campaign SET row_version = OLD.row_version + 1 WHERE id = NEW.id;
        END
        """,
        """
        CREATE TRIGGER campaigns_content_inserted AFTER INSERT ON campaigns_campaigncontent
        FOR EACH ROW BEGIN
            UPDATE campaigns_campaign SET row_version = row_version + 1 WHERE id = NEW.campaign_id;
        END
        """,
        """
        CREATE TRIGGER campaigns_content_updated AFTER UPDATE ON campaigns_campaigncontent
        FOR EACH ROW BEGIN
            UPDATE campaigns_campaign SET row_version = row_version + 1
            WHERE id IN (OLD.campaign_id, NEW.campaign_id);
        END
        """,
        """
        CREATE TRIGGER campaigns_content_deleted AFTER DELETE ON campaigns_campaigncontent
        FOR EACH ROW BEGIN
            UPDATE campaigns_campaign SET row_version = row_version + 1 WHERE id = OLD.campaign_id;
        END
        """,
    ],
    [
        "DROP TRIGGER campaigns_content_deleted",
        "DROP TRIGGER campaigns_content_updated",
        "DROP TRIGGER campaigns_content_inserted",
        "DROP TRIGGER campaigns_campaign_version",
    ],
)
TRIGGERS = {"postgresql": POSTGRESQL, "sqlite": SQLITE}


def _run(statements_of):
    def run(apps, schema_editor):
        for statement in statements_of(TRIGGERS[schema_editor.connection.vendor]):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0008_send_policies_and_approvals'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaign',
            name='row_version',
            field=models.BigIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.RunPython(
            _run(lambda triggers: triggers[0]), _run(lambda triggers: triggers[1]), elidable=False
        ),
    ]
