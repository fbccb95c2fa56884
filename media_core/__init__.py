"""Sans-IO media: RTP/RTCP, SRTP through libsrtp, jitter buffer, quality figures, the relay core."""
