Feature: TLS on every endpoint: TLS 1.2 or higher, ECDHE with AEAD suites only
  The TLS probe attempts every protocol version and every TLS 1.2 cipher family against each
  endpoint the target publishes. An endpoint passes only when it refuses TLS 1.0 and 1.1, refuses
  every TLS 1.2 suite without ECDHE and AEAD, and negotiates TLS 1.2 with an ECDHE AEAD suite.
  The probe's findings for each endpoint are kept as evidence.

  @live @url @DM-11
  Scenario: Every device-management endpoint refuses old protocols and weak suites
    Given the "dm" endpoints of the target
    When the TLS probe runs against each of them
    Then no endpoint accepts TLS 1.0 or TLS 1.1
    And no endpoint accepts a TLS 1.2 suite without ECDHE and AEAD
    And every endpoint negotiates TLS 1.2 with an ECDHE AEAD suite

  @live @url @MT-06 @MT-10
  Scenario: Every meeting endpoint, signaling and sign-in included, refuses old protocols and weak suites
    Given the "meeting" endpoints of the target
    When the TLS probe runs against each of them
    Then no endpoint accepts TLS 1.0 or TLS 1.1
    And no endpoint accepts a TLS 1.2 suite without ECDHE and AEAD
    And every endpoint negotiates TLS 1.2 with an ECDHE AEAD suite

  @live @url @IN-02
  Scenario: Every public endpoint of the target enforces TLS 1.2 or higher
    Given every endpoint of the target
    When the TLS probe runs against each of them
    Then no endpoint accepts TLS 1.0 or TLS 1.1
    And every endpoint passes the TLS policy
