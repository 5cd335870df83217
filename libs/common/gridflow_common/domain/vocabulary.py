"""Gridflow's one vocabulary: every status, reason, action, tier, colour and channel a service
compares or a person reads, with its Chinese name. Standard library only.

Services compare these constants, never string literals of their own, and every text a person
reads (SMS, the board, exports) takes the Chinese name from here (``zh``), so no English word
reaches a Chinese reader.

Inside the code the unit that holds a case is its *holder* (the word "handler" is kept for
message handlers); the case view's public field stays ``handler`` as FORMAT.md names it.
"""

from __future__ import annotations

# -- case statuses (案件状态) ----------------------------------------------------------------------
REGISTERED = "registered"
DISPATCHED = "dispatched"
ACCEPTED = "accepted"
IN_PROGRESS = "in_progress"
RESOLVED = "resolved"
CLOSED = "closed"
REJECTED = "rejected"
ON_HOLD = "on_hold"
CASE_STATUSES = (REGISTERED, DISPATCHED, ACCEPTED, IN_PROGRESS, RESOLVED, CLOSED, REJECTED, ON_HOLD)

# -- what a holder reports (处置反馈) --------------------------------------------------------------
RETURNED = "returned"
BEYOND_AUTHORITY = "beyond_authority"
# Joint handling (协同): what leaves the case's status as it is. A note (备注) comes from the
# holder, the lead department or an assisting department; an extension request (申请延期) from
# the holder, awaiting the command center's decision.
NOTE = "note"
EXTENSION_REQUESTED = "extension_requested"
# A pause (挂起) of the clock, asked for with a reason (waiting for the resident, for weather, for
# another body), and the holder's word that the wait is over: the clock runs again.
PAUSE_REQUESTED = "pause_requested"
RESUMED = "resumed"
UPDATE_STATUSES = (
    ACCEPTED,
    IN_PROGRESS,
    RESOLVED,
    RETURNED,
    BEYOND_AUTHORITY,
    NOTE,
    EXTENSION_REQUESTED,
    PAUSE_REQUESTED,
    RESUMED,
)

# -- a unit's part in a case (主办 / 协办) -----------------------------------------------------
LEAD = "lead"
ASSISTING = "assisting"

# -- why a case was (re)assigned ----------------------------------------------------------------
REASON_NEW = "new"
REASON_ESCALATED = "escalated"
REASON_RETURNED = "returned"
REASON_REWORK = "rework"
REASON_RECLASSIFIED = "reclassified"
# The command center's order named the unit (指派): not an escalation.
REASON_ASSIGNED = "assigned"
ROUTING_REASONS = (
    REASON_NEW,
    REASON_ESCALATED,
    REASON_RETURNED,
    REASON_REWORK,
    REASON_RECLASSIFIED,
    REASON_ASSIGNED,
)

# -- what routing announces when a case cannot move (at the top it waits for an order) ----------
AWAITING_ORDER = "awaiting_order"

# -- the command center's orders (指令) --------------------------------------------------------
ORDER_ASSIGN = "assign"
ORDER_ESCALATE = "escalate"
ORDER_HOLD = "hold"
ORDER_RELEASE = "release"
ORDER_REJECT = "reject"
ORDER_REOPEN = "reopen"
ORDER_MERGE = "merge"
ORDER_SUPERVISE = "supervise"
ORDER_COMMENT = "comment"
# The command center's decision on a holder's pending request (extension or pause).
ORDER_APPROVE = "approve"
ORDER_REFUSE = "refuse"
ORDER_KINDS = (
    ORDER_ASSIGN,
    ORDER_ESCALATE,
    ORDER_HOLD,
    ORDER_RELEASE,
    ORDER_REJECT,
    ORDER_REOPEN,
    ORDER_MERGE,
    ORDER_SUPERVISE,
    ORDER_COMMENT,
    ORDER_APPROVE,
    ORDER_REFUSE,
)
# A case's timeline records each order as an entry of this kind (detail: the order's kind, who
# gave it and why); a merge also leaves an entry on the case the other joined.
ENTRY_ORDER = "order"
ENTRY_MERGED_FROM = "merged_from"

# -- unit kinds (units.csv) and the duty role of each (people.csv) --------------------------------
COMMAND_CENTER = "command_center"
BUREAU = "bureau"
STREET_CENTER = "street_center"
STATION = "station"
COMMUNITY_OFFICE = "community_office"
UNIT_KINDS = (COMMAND_CENTER, BUREAU, STREET_CENTER, STATION, COMMUNITY_OFFICE)

ROLE_GRID_WORKER = "grid_worker"
ROLE_COMMUNITY_STAFF = "community_staff"
ROLE_STREET_DUTY = "street_duty"
ROLE_STATION_DUTY = "station_duty"
ROLE_BUREAU_DUTY = "bureau_duty"
ROLE_COMMAND_DUTY = "command_duty"
ROLE_LEADER = "leader"
ROLES = (
    ROLE_GRID_WORKER,
    ROLE_COMMUNITY_STAFF,
    ROLE_STREET_DUTY,
    ROLE_STATION_DUTY,
    ROLE_BUREAU_DUTY,
    ROLE_COMMAND_DUTY,
    ROLE_LEADER,
)

# -- tiers (三级) ----------------------------------------------------------------------------------
COMMUNITY = "community"
STREET = "street"
DISTRICT = "district"
TIERS = (COMMUNITY, STREET, DISTRICT)

# -- colours (四色预警) and what entering one triggers --------------------------------------
GREEN = "green"
YELLOW = "yellow"
ORANGE = "orange"
RED = "red"
COLOURS = (GREEN, YELLOW, ORANGE, RED)

ACTION_NONE = "none"
# The city's data (warning_levels.csv) names it so; it reminds the holder.
ACTION_REMIND = "remind_handler"
ACTION_SUPERVISE = "supervise"
ACTION_ESCALATE = "escalate"
WARNING_ACTIONS = (ACTION_NONE, ACTION_REMIND, ACTION_SUPERVISE, ACTION_ESCALATE)

# -- channels a report arrives through ------------------------------------------------------------
CHANNELS = ("grid_app", "hotline", "wechat", "web", "sensor", "open311", "import")

# -- how a notification reaches a person --------------------------------------------------------
NOTICE_SMS = "sms"
# What became of a notification. Notify records what it sends and, in this version, no gateway
# reports back: a notice is recorded, and "sent"/"failed" wait for the channel plugins.
NOTICE_RECORDED = "recorded"

# -- Chinese names, for everything a person reads --------------------------------------------------
ZH: dict[str, str] = {
    REGISTERED: "已立案",
    DISPATCHED: "已派遣",
    ACCEPTED: "已签收",
    IN_PROGRESS: "处置中",
    RESOLVED: "已处置待核查",
    CLOSED: "已结案",
    REJECTED: "不予立案",
    ON_HOLD: "挂账",
    RETURNED: "退回",
    BEYOND_AUTHORITY: "超出权限",
    NOTE: "备注",
    EXTENSION_REQUESTED: "申请延期",
    PAUSE_REQUESTED: "申请挂起",
    RESUMED: "恢复计时",
    LEAD: "主办",
    ASSISTING: "协办",
    REASON_NEW: "新派遣",
    REASON_ESCALATED: "升级",
    REASON_REWORK: "返工",
    REASON_RECLASSIFIED: "重新分类",
    REASON_ASSIGNED: "指挥中心指派",
    ORDER_ASSIGN: "指派",
    ORDER_ESCALATE: "升级",
    ORDER_HOLD: "挂账",
    ORDER_RELEASE: "取消挂账",
    ORDER_REJECT: "不予立案",
    ORDER_REOPEN: "重新办理",
    ORDER_MERGE: "合并",
    ORDER_SUPERVISE: "督办",
    ORDER_COMMENT: "点评",
    ORDER_APPROVE: "批准",
    ORDER_REFUSE: "不予批准",
    ENTRY_ORDER: "指令",
    ENTRY_MERGED_FROM: "并入",
    AWAITING_ORDER: "待指挥中心指令",
    COMMAND_CENTER: "指挥中心",
    BUREAU: "区级部门",
    STREET_CENTER: "街镇中心",
    STATION: "所站",
    COMMUNITY_OFFICE: "社区",
    COMMUNITY: "社区",
    STREET: "街道",
    DISTRICT: "区级",
    GREEN: "绿色",
    YELLOW: "黄色",
    ORANGE: "橙色",
    RED: "红色",
    ACTION_NONE: "无",
    ACTION_REMIND: "提醒",
    ACTION_SUPERVISE: "督办",
    ACTION_ESCALATE: "升级",
    "grid_app": "网格员App",
    "hotline": "12345热线",
    "wechat": "微信",
    "web": "网站",
    "sensor": "感知设备",
    "open311": "Open311",
    "import": "批量导入",
    NOTICE_SMS: "短信",
    NOTICE_RECORDED: "已记录",
}


def zh(term: str | None) -> str:
    """The Chinese name of a vocabulary term; an unknown term is returned as it is."""
    if term is None:
        return ""
    return ZH.get(term, term)


# -- what a case's timeline records (案件流转记录), besides the statuses above --------------------
# An entry's kind is the status a holder reported, or one of these.
ENTRY_REPORT_JOINED = "report_joined"
ENTRY_ROUTED = "routed"
ENTRY_WARNING = "warning"
ENTRY_VERIFIED = "verified"
ENTRY_VERIFICATION_FAILED = "verification_failed"
ENTRY_EVALUATED = "evaluated"
# A unit the case was given to could not be reached after the last try (the departments
# service's delivery schedule): the command center must act.
ENTRY_UNDELIVERABLE = "undeliverable"

# -- what intake answers a report with ------------------------------------------------------------
OUTCOME_REGISTERED = "registered"
OUTCOME_JOINED = "joined"
OUTCOME_RESUBMISSION = "resubmission"

ZH.update(
    {
        ENTRY_REPORT_JOINED: "合并",
        ENTRY_ROUTED: "分拨",
        ENTRY_WARNING: "预警",
        ENTRY_VERIFIED: "核查通过",
        ENTRY_VERIFICATION_FAILED: "核查未通过",
        ENTRY_EVALUATED: "评价",
        ENTRY_UNDELIVERABLE: "无法送达",
        OUTCOME_JOINED: "合并",
        OUTCOME_RESUBMISSION: "重复提交",
    }
)
