"""`python -m services.meeting.pstn --region R --home H`: run one region's PSTN gateway."""

from services.meeting.pstn.server import main

if __name__ == "__main__":
    main()
