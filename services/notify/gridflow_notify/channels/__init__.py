"""The notification channels Gridflow ships (entry-point group ``gridflow.notify_channels``):
``email`` (SMTP), ``sms`` (an HTTP SMS gateway), ``wecom_robot`` (企业微信群机器人, the WeChat
Work group robot), ``webhook`` (a signed generic webhook) and ``wechat_official`` (微信公众号
客服消息, the official account's customer-service message, for residents who reported by WeChat).
"""
