"""Delivery: the dispatcher claims deliveries and hands composed messages to a transport.

``transports`` holds the transports (SMTP, maildir) behind one small interface.
"""
