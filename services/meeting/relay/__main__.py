"""`python -m services.meeting.relay --region R --home H [--name N]`: run one media relay."""

from services.meeting.relay.server import main

if __name__ == "__main__":
    main()
