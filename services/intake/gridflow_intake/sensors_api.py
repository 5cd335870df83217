"""Sensor alerts: ``POST /api/v1/sensors/alerts`` with a device's key (a channel key of channel
``sensor`` that names its device: ``POST /api/v1/admin/keys {"channel": "sensor", "device":
"wl-0042", "device_place": {"lat": .., "lon": ..}}``). The device is the key's, never the body's
(a body naming one is refused); the place is the body's ``location`` or the device's registered
place. A device's alerts join its open case (gridflow_intake/device_merge.py). The command
center (or an admin), who may report on any channel, may enter an alert by hand: it has no
device and merges by place like any report.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from gridflow_intake import answers as ans
from gridflow_intake import handlers as h
from gridflow_intake import progress as pg
from gridflow_intake import schemas as s
from gridflow_intake.channels import ChannelIntake

CHANNEL = "sensor"


class SensorReadingSchema(s._Strict):
    value = s.StrictFloat(required=True, allow_nan=False, validate=validate.Range(-1e12, 1e12))
    unit = fields.String(validate=validate.Length(1, 20), load_default=None)


class SensorAlertSchema(s._Strict):
    """A device's alert. No ``device``: the key says which device speaks."""

    # The device's own id of the alert: its retries are the same alert (answered 200, no copy).
    alert_id = fields.String(validate=[validate.Length(1, 64), s._not_blank], load_default=None)
    kind = fields.String(required=True, validate=[validate.Length(1, 64), s._not_blank])
    category = fields.String(validate=validate.Length(1, 100), load_default=None)
    reading = fields.Nested(SensorReadingSchema, load_default=None)
    observed_at = fields.AwareDateTime(validate=s._sane_instant, load_default=None)
    description = fields.String(validate=[validate.Length(1, 500), s._not_blank], load_default=None)
    location = fields.Nested(s.LocationSchema, load_default=None)


class SensorAnswerSchema(ans.ReportAnswer):
    """A report's answer (case, outcome, progress link), and the device the key named."""

    device = fields.String(required=True, allow_none=True)


_ALERT_SCHEMA = SensorAlertSchema()


def alert_report(alert: dict, device: str | None, place: dict | None) -> dict:
    """The report an alert is: described in Chinese with the reading, located by the body or
    the device's registered place. No device: the command center entering an alert by hand
    (merged by place, as any report)."""
    location = alert["location"] or place
    if location is None:
        raise h.Rejected(
            422,
            {"location": ["give the alert's location: this device has no registered place"]},
        )
    words = [f"传感器告警 (sensor alert) {alert['kind']}"] + ([f"设备 {device}"] if device else [])
    reading = alert["reading"]
    if reading is not None:
        words.append(
            f"读数 {reading['value']:g}{(' ' + reading['unit']) if reading['unit'] else ''}"
        )
    if alert["observed_at"] is not None:
        words.append(f"观测于 {alert['observed_at'].isoformat()}")
    if alert["description"]:
        words.append(alert["description"])
    return {
        "channel": CHANNEL,
        "external_id": f"{device or 'manual'}:{alert['alert_id']}" if alert["alert_id"] else None,
        "description": "；".join(words),
        "category": alert["category"],
        "location": location,
        "reporter": None,
        "device": device,
    }


class SensorEndpoints(ChannelIntake):
    """Mixed into IntakeApi."""

    def post_sensor_alert(self, call: Any) -> Any:
        from gridflow_intake.api import Answer

        caller = self.header_channel_caller(call, CHANNEL)
        record = caller.credential or {}
        device = record.get("device")
        if caller.principal is not None and not caller.principal.is_user and not device:
            raise h.Rejected(
                403, {"authorization": ["this sensor key names no device; issue one with device"]}
            )
        alert = self._load(_ALERT_SCHEMA, call.body)  # type: ignore[attr-defined]
        report = alert_report(alert, device, record.get("device_place"))
        status, answer, token = self.register_channel_report(call, report)
        answer = pg.link_in_answer(answer, call.request.host_url, token)
        return Answer(status, {**answer, "device": device})
