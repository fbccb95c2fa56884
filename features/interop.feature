Feature: Third-party room systems join only securely: SIP over SIP TLS, H.323 with H.235
  The meeting region's interop gateway is how third-party room systems reach a conference. It
  listens on TLS alone, TLS 1.2 or later: SIP over TLS for SIP systems and H.225.0 call signaling
  over TLS for H.323 systems. A SIP system is taken only with a sips: URI and an SRTP offer whose
  keys travel inside that TLS connection; an H.323 system only with H.235.6, a Diffie-Hellman key
  agreement and encrypted media. The meeting's own rules still decide who gets in, and every
  third-party leg is kept in the conference's call record, marked encrypted, with its protocol.

  Background:
    Given the meeting regions are running
    And the interop gateway of region "sa" is running

  @live @MT-07
  Scenario: A SIP system joins over SIP TLS with SRTP, and nothing weaker is taken
    Given an enterprise in meeting region "sa" with the users "Sven"
    And "Sven" owns a conference for third-party systems
    When a SIP system calls the conference over TLS offering SRTP
    Then the call is answered with SRTP keys inside the TLS connection
    And the conference's call record has an encrypted "sips+srtp" leg
    When a SIP system calls the conference over TLS offering plain RTP
    Then the call is refused with 488
    When a SIP system calls the conference with a "sip:" Request-URI
    Then the call is refused with 416
    When a SIP system calls the conference asking for transport "udp"
    Then the call is refused with 403

  @live @MT-07
  Scenario: The gateway has no plaintext SIP listener and refuses TLS below 1.2
    Then the gateway process listens on its SIP TLS and H.323 TLS ports only
    And plaintext SIP over TCP and UDP gets no SIP answer from the gateway
    And both ports refuse TLS 1.1 and negotiate TLS 1.2

  @live @MT-07
  Scenario: An H.323 system joins only with H.235
    Given an enterprise in meeting region "sa" with the users "Hana"
    And "Hana" owns a conference for third-party systems
    When an H.323 system calls the conference without H.235
    Then the call is released with reason "securityDenied"
    When an H.323 system calls the conference with H.235.6 and encrypted media
    Then the call is connected with media keys only the caller can open
    And the conference's call record has an encrypted "h323+h235" leg
