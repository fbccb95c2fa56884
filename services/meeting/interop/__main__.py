"""`python -m services.meeting.interop --region R --home H`: run one region's interop gateway."""

from services.meeting.interop.server import main

if __name__ == "__main__":
    main()
