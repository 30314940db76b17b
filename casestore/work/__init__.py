"""Case work: case types (definitions), stages, tasks and checklists, queues and get-next with
leases, SLA clocks on business calendars, escalation and supervisor overrides.

``casestore.work`` may import the other casestore domains; only ``api`` and the file stage
import it.  The SLA arithmetic (``calendar``) is pure: no database.
"""
