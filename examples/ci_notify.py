"""Post one CI result line to a room, e.g. as a pipeline's last step.

    CHATD_URL=... CHATD_TOKEN=... python examples/ci_notify.py ROOM_ID STATUS [DETAIL...]
STATUS and DETAIL may come from CI_STATUS and CI_DETAIL instead; with CI_JOB_ID
set, a re-run of the same job posts its line once (it is the clientMsgId).
"""
import os
import sys

from chatd_client import ChatError, Client

ICONS = {"passed": "✅", "failed": "❌"}


def main(argv):
    room = argv[0]
    status = argv[1] if len(argv) > 1 else os.environ.get("CI_STATUS", "finished")
    detail = " ".join(argv[2:]) or os.environ.get("CI_DETAIL", "")
    line = "%s CI %s%s" % (ICONS.get(status, "ℹ️"), status, ": " + detail if detail else "")
    try:
        client = Client.from_env(retry_rate_limited=3)
        event = client.send(room, line, client_msg_id=os.environ.get("CI_JOB_ID"))
    except (ChatError, ValueError) as exc:
        sys.exit("ci_notify: %s" % exc)
    print("posted message %d to %s" % (event["id"], room))


if __name__ == "__main__":
    main(sys.argv[1:])
