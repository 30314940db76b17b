"""What a page says after an action sent the browser on (``?done=KEY``): only these known keys
are shown, so a link cannot put words of its own into a page."""

from __future__ import annotations

NOTICES = {
    "nothing_waiting": "Nothing is waiting in your queues right now.",
    "notices_seen": "Your notifications are marked as read.",
    "released": "The task went back to its queue.",
    "completed": "Task completed.",
    "completed_next": "Task completed. Here is your next task.",
    "completed_none": "Task completed. Nothing else is waiting in your queues.",
    "reassigned": "The task was reassigned; the reason is in the timeline.",
    "redirected": "The task moved to the other queue; the reason is in the timeline.",
    "waived": "The checklist item was waived; the reason is in the timeline.",
    "stage_skipped": "The stage was skipped; the reason is in the timeline.",
    "stage_reopened": "The stage was reopened; the reason is in the timeline.",
    "clock_paused": "The clock was paused; the reason is in the timeline.",
    "clock_resumed": "The clock runs again; the reason is in the timeline.",
    "case_reopened": "The case was reopened; the reason is in the timeline.",
    "replayed": "The dead letter was published again; its item goes through the pipeline once more.",
    "discarded": "The dead letter was discarded; the reason is in the audit trail.",
    "user_added": "The user was added. Give them a password to sign in to the workbench.",
    "user_changed": "The user's role and teams were changed; it holds from their next request.",
    "user_disabled": "The user is disabled: their sessions and tokens stop working now.",
    "user_enabled": "The user is enabled again.",
    "password_set": "The password was set; the user's open sessions ended.",
    "token_revoked": "The token was revoked: it stops working now.",
    "view_saved": "The view was saved. It is listed here and on your start page.",
    "view_deleted": "The view was deleted.",
    "reply_queued": "Your reply is queued in the outbox; its state shows in the timeline.",
    "outbound_retried": "The message is queued to be sent again.",
    "outbound_confirmed": "The message is recorded as sent.",
    "letter_printed": "The letter is marked printed.",
    "letter_posted": "The letter is marked posted.",
    "prospect_merged": ("The prospect was merged: their cases now belong to the customer; the reason is in each "
                        "case's timeline."),
    "prospect_dismissed": "Recorded as not the same person; later imports keep it so.",
}


def notice_for(key: str) -> str:
    return NOTICES.get(key, "")
