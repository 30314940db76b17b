"""Outbound correspondence: replies from a case by email, SMS and letter.

- ``templates``: named Jinja2 templates per case type and channel, rendered in a sandbox;
- ``services``: ``queue_message`` (for any caller's transaction: a reply route, a task's
  completion), preview, letters for the mailroom, bounces and SMS status callbacks;
- ``outbox`` and ``sender``: the sender loop that delivers queued messages with retries,
  backoff and a claim that makes a crash neither lose a message nor send it twice (see
  ``sender`` for exactly what is promised);
- ``transports``: SMTP relay (smtplib) and Twilio REST; ``letters``: the PDF (fpdf2).

``casestore.outbound`` may import the other casestore domains; none of them imports it.
"""
