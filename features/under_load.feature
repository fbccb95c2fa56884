Feature: Device management under a load of 300 devices: still only deployed devices, listed data and strong TLS
  While 300 deployed virtual devices (the real device agent, driven by Locust through `roomtrust load
  scenarios/load-300.yaml`) enroll and then send heartbeats and telemetry over mutual TLS to DM
  region "us", the same region is checked again: a device nobody deployed gets nothing in, a revoked
  device is cut off while the others carry on, an unknown telemetry field is refused and stored
  nowhere, and the loaded port still speaks only strong TLS. Every scenario ends by showing, from
  Locust's own statistics, that the 300 devices were running and being served across its checks.

  Background:
    Given the local stack is running
    And a load of 300 deployed devices runs against DM region "us"
    And an administrator of an enterprise in DM region "us" with a site

  @live @DM-02
  Scenario: Under load, a device nobody deployed gets no certificate, sends no telemetry and leaves nothing behind
    Given a device that no administrator deployed
    When it asks region "us" to enroll
    Then the answer is 403 with a reason
    When telemetry is sent to region "us" without a client certificate
    Then the answer is 401 with a reason
    And nothing of the device is stored in region "us"
    And the load of 300 devices ran throughout the checks

  @live @DM-04
  Scenario: Under load, a revoked device is refused on its next request while the load's devices carry on
    Given a deployed and enrolled device
    And the device's heartbeat is accepted
    When the administrator un-deploys the device
    Then the device's next heartbeat on the same connection is refused with 403
    And the load of 300 devices ran throughout the checks
    And the load's heartbeats and telemetry were all accepted meanwhile

  @live @DM-09
  Scenario: Under load, telemetry with a field outside the listed categories is refused and stored nowhere
    Given a deployed and enrolled device
    When the device sends telemetry with the field "meeting_transcript"
    Then the answer is 422 naming the field "meeting_transcript"
    And no row of region "us" holds the field "meeting_transcript"
    And the load of 300 devices ran throughout the checks
    And the load's own telemetry was stored meanwhile, with listed fields only

  @live @DM-11
  Scenario: Under load, the loaded DM port refuses TLS 1.1 and suites without ECDHE and AEAD
    Given the DM endpoint of region "us" that carries the load
    When the TLS probe runs against each of them
    Then no endpoint accepts TLS 1.0 or TLS 1.1
    And no endpoint accepts a TLS 1.2 suite without ECDHE and AEAD
    And every endpoint negotiates TLS 1.2 with an ECDHE AEAD suite
    And the load of 300 devices ran throughout the checks
