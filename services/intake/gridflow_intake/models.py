"""Intake owns the case register: cases, the reports they hold, and every case's timeline.

The case row is also the read model the public API serves: routing, departments and the SLA
clock report what they did by events, and intake projects those onto it.
"""

import sqlalchemy as sa

from gridflow_common.db import UtcDateTime, messaging_tables

metadata = sa.MetaData()

cases = sa.Table(
    "intake_cases",
    metadata,
    sa.Column("case_id", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("category", sa.String(100), nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("area_code", sa.String(32), nullable=False),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("tier", sa.String(16), nullable=True),
    sa.Column("holder", sa.String(100), nullable=True),
    sa.Column("lead", sa.String(100), nullable=True),
    sa.Column("assisting", sa.JSON, nullable=False),
    sa.Column("assignment_id", sa.String(60), nullable=True),
    # The assignment's place in routing's sequence for the case: an announcement of an older
    # assignment, arriving late, never overwrites a newer one.
    sa.Column("assignment_seq", sa.Integer, nullable=True),
    sa.Column("escalations", sa.Integer, nullable=False, default=0),
    sa.Column("reporters", sa.Integer, nullable=False, default=1),
    sa.Column("satisfaction", sa.Integer, nullable=True),
    sa.Column("jurisdiction_version", sa.Integer, nullable=False),
    sa.Column("registered_at", UtcDateTime(), nullable=False),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    # The running clock's due instant and colour (NULL when no clock runs): the command
    # center's lists filter and sort by them (intake_0100).
    sa.Column("due_at", UtcDateTime(), nullable=True),
    sa.Column("colour", sa.String(10), nullable=True),
    # The command center's orders (intake_0120): on the long-term list (挂账) since when, from
    # which status (release returns it there) and with which due instant (release moves it
    # later by the time on hold); how many leader comments (点评) and approved extensions the
    # case has.
    sa.Column("held_at", UtcDateTime(), nullable=True),
    sa.Column("held_from", sa.String(20), nullable=True),
    sa.Column("held_due_at", UtcDateTime(), nullable=True),
    sa.Column("comments", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("extensions", sa.Integer, nullable=False, default=0, server_default="0"),
    # An approved pause (挂起, intake_0160): since when the clock stands still, and the due
    # instant it had (the holder's ``resumed`` moves it later by the time paused).
    sa.Column("paused_at", UtcDateTime(), nullable=True),
    sa.Column("paused_due_at", UtcDateTime(), nullable=True),
    # What the command center's lists filter by, kept on the row at registration (intake_0110):
    # the street and community the case's area lies in, the channel of its first report and the
    # address it gave (null for a report located by a point or a grid).
    sa.Column("street_code", sa.String(32), nullable=True),
    sa.Column("community_code", sa.String(32), nullable=True),
    sa.Column("channel", sa.String(20), nullable=True),
    sa.Column("address", sa.Text, nullable=True),
    # When its first report was observed (a grid worker's phone may send it hours later;
    # intake_0170); null when the report did not say. registered_at stays the arrival.
    sa.Column("observed_at", UtcDateTime(), nullable=True),
    sa.Index("ix_intake_cases_status_due", "status", "due_at", "case_id"),
    sa.Index("ix_intake_cases_registered", "registered_at", "case_id"),
    sa.Index("ix_intake_cases_colour_due", "colour", "due_at"),
    sa.Index("ix_intake_cases_street", "street_code", "status"),
    sa.Index("ix_intake_cases_community", "community_code"),
    sa.Index("ix_intake_cases_area", "area_code"),
    sa.Index("ix_intake_cases_holder", "holder"),
    sa.Index("ix_intake_cases_lead", "lead"),
    # Duplicate detection looks for open cases of one category in a small lat/lon box: the
    # index narrows by category and latitude band instead of every case of the category.
    sa.Index("ix_intake_cases_category_position", "category", "lat", "lon"),
    # The assessment sums a period's registered and closed cases (intake_0130).
    sa.Index("ix_intake_cases_registered_at", "registered_at"),
    sa.Index("ix_intake_cases_closed_at", "closed_at"),
)

reports = sa.Table(
    "intake_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), sa.ForeignKey("intake_cases.case_id"), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("external_id", sa.String(128), nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("reporter", sa.JSON, nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    # SHA-256 of the reporter's progress token (gridflow_intake/progress.py): the token is shown
    # once, in the answer to the report, and never stored. Null for reports taken before links.
    sa.Column("progress_token_hash", sa.String(64), nullable=True),
    # When the reporter saw it (intake_0170); received_at is when it reached Gridflow.
    sa.Column("observed_at", UtcDateTime(), nullable=True),
    sa.Index("uq_intake_reports_progress_token_hash", "progress_token_hash", unique=True),
    # A case's reports, for its view and for the lists' masking (intake_0110).
    sa.Index("ix_intake_reports_case_id", "case_id"),
    # A resubmission of (channel, external_id) is the same report, however often a phone that was
    # offline sends it.
    sa.UniqueConstraint("channel", "external_id", name="uq_intake_reports_channel_external_id"),
    # The sensor that sent the report (its key's device, gridflow_intake/sensors_api.py): a
    # device's alerts join its open case (intake_0180).
    sa.Column("device", sa.String(64), nullable=True),
    sa.Index("ix_intake_reports_device", "device"),
)

# More progress links for a report (gridflow_intake/contacts.py: the link in a resident's
# message), by the SHA-256 of their token like the report's own.
progress_links = sa.Table(
    "intake_progress_links",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("report_id", sa.Integer, nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

colours = sa.Table(
    "intake_colours",
    metadata,
    # Keyed by assignment: a colour event may overtake the dispatch event it belongs to.
    sa.Column("assignment_id", sa.String(60), primary_key=True),
    sa.Column("case_id", sa.String(40), nullable=False),
    sa.Column("colour", sa.String(10), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
)

timeline = sa.Table(
    "intake_timeline",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    # The fact an entry records, for entries a projection may meet more than once (the same
    # warning announced by two SLA replicas, a redelivered dispatch): recorded once. Null for
    # entries written once by intake's own requests.
    sa.Column("fact_key", sa.String(200), nullable=True),
    sa.Index("uq_intake_timeline_fact_key", "fact_key", unique=True),
    # The assessment counts a period's returns and escalations (intake_0130).
    sa.Index("ix_intake_timeline_kind_at", "kind", "at"),
    # A case's entries of a kind, for the assessment's per-case reads (intake_0150).
    sa.Index("ix_intake_timeline_kind_case_at", "kind", "case_id", "at"),
)

# What department systems said: the first answer to each department message that carried an id
# (Idempotency-Key, or the body's message_id), kept 24 hours, so a repeat (a retry after a lost
# answer, a redelivery) gets that answer and changes nothing. Keyed by the code the message came
# from, so two departments' ids never meet. Case data: a reset empties it with the cases.
department_messages = sa.Table(
    "intake_department_messages",
    metadata,
    sa.Column("sender", sa.String(100), primary_key=True),
    sa.Column("message_key", sa.String(200), primary_key=True),
    sa.Column("case_id", sa.String(40), nullable=True),
    # The HTTP status of the first answer and its body (an AMQP reply is made from both).
    sa.Column("answer_status", sa.Integer, nullable=False),
    sa.Column("answer", sa.JSON, nullable=False),
    # Wall-clock time, never the city's: how long an answer is kept is operational.
    sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
)

# The signed action links (gridflow_common.links) a unit has used: each delivery's action is
# done once, however many copies of its e-mail (a repeated push) carry a link for it.
spent_links = sa.Table(
    "intake_spent_links",
    metadata,
    sa.Column("delivery_id", sa.String(100), primary_key=True),
    sa.Column("action", sa.String(20), primary_key=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("unit", sa.String(100), nullable=False),
    # The nonce of the link that was used (of the copies that exist), for the audit trail.
    sa.Column("nonce", sa.String(40), nullable=False),
    # Operational (real) time: when the person clicked.
    sa.Column("spent_at", UtcDateTime(), nullable=False),
)

inbox = sa.Table(
    "intake_inbox",
    metadata,
    # One row per unit a case was given to (case_dispatched's deliveries): a repeated
    # announcement finds its row and adds none.
    sa.Column("delivery_id", sa.String(200), primary_key=True),
    # The order a unit reads its inbox in (GET /api/v1/units/{code}/inbox?after=cursor), one
    # sequence for every unit. Given out in commit order (handlers.INBOX_LOCK), so a reader
    # that has seen n never misses a row committed later with a smaller number.
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("unit", sa.String(100), nullable=False),
    # The unit's department (null for a unit with none): a department's credential reads all
    # of its units' deliveries at once.
    sa.Column("department", sa.String(100), nullable=True),
    # lead | assisting (主办 / 协办)
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("case_id", sa.String(40), nullable=False),
    sa.Column("assignment_id", sa.String(60), nullable=False),
    # The adapter that pushed it (null when the announcement named none).
    sa.Column("adapter", sa.String(40), nullable=True),
    # The holder's due instant as announced (ISO 8601, the city's zone); null before a clock.
    sa.Column("due_at", sa.String(40), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("uq_intake_inbox_cursor", "cursor", unique=True),
    sa.Index("ix_intake_inbox_unit_cursor", "unit", "cursor"),
    sa.Index("ix_intake_inbox_department_cursor", "department", "cursor"),
)

# Hotspots (热点): new cases of one category in one grid or community within one fixed window
# (gridflow_common.domain.assessment), counted as cases are registered. One row per (category,
# area, window): the counter the registration increments in one statement, and the alert once
# the count reaches the threshold (alerted_at set by the one registration that reached it).
hotspots = sa.Table(
    "intake_hotspots",
    metadata,
    sa.Column("hotspot_id", sa.String(40), primary_key=True),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("area_code", sa.String(32), nullable=False),
    sa.Column("window_start", UtcDateTime(), nullable=False),
    sa.Column("window_minutes", sa.Integer, nullable=False),
    # The threshold in force when the window's first case came (a new jurisdiction changes the
    # next windows, not one half counted).
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_at", UtcDateTime(), nullable=False),
    sa.Column("last_at", UtcDateTime(), nullable=False),
    sa.Column("alerted_at", UtcDateTime(), nullable=True),
    sa.Index("ix_intake_hotspots_alerted_last", "alerted_at", "last_at"),
)

# What the city's history teaches classification (gridflow_intake/classifying.py): a case's
# description and the category it was given after registration (a department's return with
# another category, an assign order naming one, a verified close). Appended, never updated: a
# case's latest row is its label, and the largest id is the version replicas compare.
classification_examples = sa.Table(
    "intake_classification_examples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.String(100), nullable=False),
    # returned | ordered | verified
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("labelled_at", UtcDateTime(), nullable=False),
)

# A photo uploaded for a report (gridflow_intake/photos.py, intake_0170): the bytes live in the
# photo folder under their sha256; the row says who uploaded it and, once a report referenced
# it, which case (and report) it belongs to. Unattached, only its uploader may read it.
photos = sa.Table(
    "intake_photos",
    metadata,
    sa.Column("photo_id", sa.String(40), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    # The credential id of the uploader (never its secret).
    sa.Column("uploaded_by", sa.String(100), nullable=False),
    sa.Column("uploaded_at", UtcDateTime(), nullable=False),
    sa.Column("case_id", sa.String(40), sa.ForeignKey("intake_cases.case_id"), nullable=True),
    sa.Column("report_id", sa.Integer, nullable=True),
    sa.Index("ix_intake_photos_case_id", "case_id"),
)

# A resident's WeChat location or text waiting (briefly) for the other half of a report, shared
# by every intake replica (intake_0180).
wechat_pending = sa.Table(
    "intake_wechat_pending",
    metadata,
    sa.Column("openid", sa.String(64), primary_key=True),
    # location ({lat, lon}) | text (the resident's words)
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    # Operational (real) time: the platform's messages arrive in it.
    sa.Column("held_until", UtcDateTime(), nullable=False, index=True),
)

OWN_TABLES = [
    classification_examples,
    photos,
    wechat_pending,
    progress_links,
    hotspots,
    department_messages,
    inbox,
    spent_links,
    timeline,
    colours,
    reports,
    cases,
]


# -- access -----------------------------------------------------------------------------------
# Users, the credentials that stand for them (and for channels and department systems), and the
# audit log. They are not case data: a reset (which empties the case register for a rehearsal)
# leaves them, so a replay keeps the credentials it signs in with. Every instant here is
# wall-clock time, never the city's simulated clock: a token's expiry is real.

users = sa.Table(
    "intake_users",
    metadata,
    sa.Column("user_id", sa.String(40), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("scope", sa.String(100), nullable=True),
    # argon2id, with its parameters and salt in the string; null until a password is set (a
    # user made by an admin signs in first with a one-time link).
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("disabled_at", UtcDateTime(), nullable=True),
)

credentials = sa.Table(
    "intake_credentials",
    metadata,
    # The public id, shown in lists and the audit log and used to revoke; never the secret.
    sa.Column("credential_id", sa.String(24), primary_key=True),
    # SHA-256 of the token: the token is 256 random bits, so a fast hash is safe, and a stolen
    # table gives no usable token.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # session | bearer | signin | channel_key | holder_key
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(40), nullable=True, index=True),
    sa.Column("channel", sa.String(20), nullable=True),
    sa.Column("holder", sa.String(100), nullable=True),
    sa.Column("label", sa.String(100), nullable=False),
    # Requests per window for this credential ("600/min"); null: the deployment's default.
    sa.Column("rate_limit", sa.String(32), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    # A one-time sign-in link is spent once.
    sa.Column("used_at", UtcDateTime(), nullable=True),
    # A sensor's channel key names its device, and may carry the device's registered place (a
    # report location: {lat, lon}, {grid_code} or {address}) (intake_0180).
    sa.Column("device", sa.String(64), nullable=True),
    sa.Column("device_place", sa.JSON, nullable=True),
)

audit = sa.Table(
    "intake_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    # user:alice, key:k-3f2a (hotline), anonymous
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    # ok | refused | failed
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
)

ACCESS_TABLES = [audit, credentials, users]
messaging = messaging_tables(metadata, "intake")
