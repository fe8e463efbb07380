"""Echo bot: answers each message that mentions it or starts with "!echo".
    CHATD_URL=http://host:8080 CHATD_TOKEN=... python examples/echo_bot.py ROOM_ID...
(or CHATD_USERNAME and CHATD_PASSWORD instead of CHATD_TOKEN)
"""
import sys

from chatd_client import Client


def main(rooms):
    client = Client.from_env()
    me = client.me()["username"].lower()
    with client.live(rooms=rooms) as session:  # reconnects and resumes by itself
        for event in session:
            if event["action"] != "new-message" or event["sender"].lower() == me:
                continue
            text = event["message"]
            # The server's `mentions`; from servers that send none, the @names in the text.
            named = event.get("mentions") or [w[1:].rstrip(",:;!?.-") for w in text.split()
                                              if w.startswith("@")]
            if text.startswith("!echo"):
                text = text[len("!echo"):].strip() or "echo"
            elif me not in (name.lower() for name in named):
                continue
            session.send(event["roomId"], text, reply_to=event["id"])


if __name__ == "__main__":
    main(sys.argv[1:])
