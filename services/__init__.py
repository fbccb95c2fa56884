"""The reference services under test: device management, meetings, and what they share."""
