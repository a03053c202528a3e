"""Initial schema: the tables micwatch wrote before it used Alembic (schema version 1).

Revision ID: 0001
Revises:
Create Date: 2026-11-23

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("device_mac", sa.String(), nullable=True),
        sa.Column("dest", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column(
            "event",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("suppression_key", sa.String(), nullable=False),
        sa.Column("suppressed_until", sa.Double(), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_sensor_device_mac_ts"),
            ["sensor", "device_mac", "ts"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_alerts_sensor_ts"), ["sensor", "ts"], unique=False)

    op.create_table(
        "destinations",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("ip", sa.String(), nullable=False),
        sa.Column(
            "names",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("org", sa.String(), nullable=True),
        sa.Column("asn", sa.Integer(), nullable=True),
        sa.Column("asn_org", sa.String(), nullable=True),
        sa.Column("jurisdiction", sa.String(), nullable=True),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("foreign", sa.Boolean(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sensor", "ip", name=op.f("pk_destinations")),
    )
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_destinations_sensor_last_seen"), ["sensor", "last_seen"], unique=False
        )

    op.create_table(
        "device_destinations",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("device_mac", sa.String(), nullable=False),
        sa.Column("dest_ip", sa.String(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.Column("bytes_up", sa.Integer(), nullable=False),
        sa.Column("bytes_down", sa.Integer(), nullable=False),
        sa.Column("flows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "sensor", "device_mac", "dest_ip", name=op.f("pk_device_destinations")
        ),
    )
    with op.batch_alter_table("device_destinations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_destinations_sensor_last_seen"),
            ["sensor", "last_seen"],
            unique=False,
        )

    op.create_table(
        "device_settings",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("mac", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=True),
        sa.Column("user_category", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("sensor", "mac", name=op.f("pk_device_settings")),
    )
    op.create_table(
        "devices",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("mac", sa.String(), nullable=False),
        sa.Column(
            "ips",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("vendor", sa.String(), nullable=True),
        sa.Column("randomized", sa.Boolean(), nullable=False),
        sa.Column("hostname", sa.String(), nullable=True),
        sa.Column("dhcp_fingerprint", sa.String(), nullable=True),
        sa.Column("dhcp_vendor_class", sa.String(), nullable=True),
        sa.Column(
            "mdns_names",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "services",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "mdns_txt",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "ssdp_servers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "user_agents",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "domains",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tls_fingerprints",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.Column("bytes_up", sa.Integer(), nullable=False),
        sa.Column("bytes_down", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sensor", "mac", name=op.f("pk_devices")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devices_sensor_last_seen"), ["sensor", "last_seen"], unique=False
        )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("device_mac", sa.String(), nullable=True),
        sa.Column("dest", sa.String(), nullable=True),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_sensor_device_mac_ts"),
            ["sensor", "device_mac", "ts"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_events_sensor_ts"), ["sensor", "ts"], unique=False)

    op.create_table(
        "meta",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("sensor", "key", name=op.f("pk_meta")),
    )
    op.create_table(
        "mutes",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("device_mac", sa.String(), nullable=False),
        sa.Column("until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sensor", "rule", "device_mac", name=op.f("pk_mutes")),
    )
    op.create_table(
        "traffic_minutes",
        sa.Column("sensor", sa.String(), nullable=False),
        sa.Column("device_mac", sa.String(), nullable=False),
        sa.Column("minute", sa.Double(), nullable=False),
        sa.Column("dest", sa.String(), nullable=False),
        sa.Column("bytes_up", sa.Integer(), nullable=False),
        sa.Column("bytes_down", sa.Integer(), nullable=False),
        sa.Column("packets_up", sa.Integer(), nullable=False),
        sa.Column("flows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "sensor", "device_mac", "minute", "dest", name=op.f("pk_traffic_minutes")
        ),
    )
    with op.batch_alter_table("traffic_minutes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_traffic_minutes_sensor_minute"), ["sensor", "minute"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("traffic_minutes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_traffic_minutes_sensor_minute"))

    op.drop_table("traffic_minutes")
    op.drop_table("mutes")
    op.drop_table("meta")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_sensor_ts"))
        batch_op.drop_index(batch_op.f("ix_events_sensor_device_mac_ts"))

    op.drop_table("events")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_sensor_last_seen"))

    op.drop_table("devices")
    op.drop_table("device_settings")
    with op.batch_alter_table("device_destinations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_destinations_sensor_last_seen"))

    op.drop_table("device_destinations")
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_destinations_sensor_last_seen"))

    op.drop_table("destinations")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_sensor_ts"))
        batch_op.drop_index(batch_op.f("ix_alerts_sensor_device_mac_ts"))

    op.drop_table("alerts")
