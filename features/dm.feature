Feature: Device management: only deployed devices, only device data, only hashed passwords
  The DM service of each region enrolls only the devices an administrator deployed there, talks
  to them over mutual TLS, stores only the DM-09 categories and keeps passwords as salted hashes.

  Background:
    Given the local stack is running
    And an administrator of an enterprise in DM region "us" with a site

  @live @DM-01
  Scenario: Every managed model can be deployed and enrolled, and no other
    When the administrator deploys one device of every managed model
    And every deployed device enrolls
    Then every managed model has an enrolled device
    And deploying a model outside the catalogue is refused naming the field "model"

  @live @DM-02 @DM-04
  Scenario: A device nobody deployed gets no certificate and leaves nothing behind
    Given a device that no administrator deployed
    When it asks region "us" to enroll
    Then the answer is 403 with a reason
    And no table of region "us" gained a row

  @live @DM-02
  Scenario: Without a certificate the service accepts no telemetry
    When telemetry is sent to region "us" without a client certificate
    Then the answer is 401 with a reason
    And no table of region "us" gained a row

  @live @DM-04
  Scenario: An un-deployed device is refused on its very next request
    Given a deployed and enrolled device
    And the device's heartbeat is accepted
    When the administrator un-deploys the device
    Then the device's next heartbeat on the same connection is refused with 403

  @live @DM-04 @DM-07
  Scenario: A certificate from another region is refused
    Given a device enrolled in DM region "eu"
    Then region "us" refuses the device's certificate at the handshake

  @live @DM-09 @DM-08
  Scenario Outline: Telemetry outside the listed data categories is refused and stores nothing
    Given a deployed and enrolled device
    When the device sends telemetry with the field "<field>"
    Then the answer is 422 naming the field "<field>"
    And no table of region "us" gained a row

    Examples:
      | field              |
      | meeting_transcript |
      | chat_message       |
      | participant_email  |
      | shared_file        |

  @live @DM-09
  Scenario: Telemetry inside the listed categories is stored
    Given a deployed and enrolled device
    When the device sends telemetry with firmware version "3.1.4" and network type "ethernet"
    Then the answer is 200
    And the device list shows firmware version "3.1.4"

  @live @DM-10
  Scenario: Administrator passwords are stored only as salted hashes
    Given two administrators registered with the same password
    Then every stored administrator password is an Argon2id hash
    And the two hashes differ
    And the password text appears nowhere in the store of region "us"
