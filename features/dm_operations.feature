Feature: Fleet operations: health alerts, bulk configuration, remote diagnosis
  Administrators manage devices remotely and in bulk, through the devices' own outbound command
  channel, and never reach end-user data.

  Background:
    Given the local stack is running
    And an administrator of an enterprise in DM region "us" with a site

  @live @DM-05
  Scenario: A reported camera fault raises an alert that goes active, acknowledged, cleared
    Given a deployed and enrolled device
    When the device reports a "camera" fault
    Then an active "major" alert for the device's "camera" is listed
    And the administrator can acknowledge and then clear it
    And the operation log records both steps

  @live @DM-13 @DM-05
  Scenario: A bulk push to one site reaches every device there and no other
    Given 3 enrolled devices at the site and 1 enrolled device at another site
    When the administrator pushes a profile setting "audio.volume" to 25 to the site
    Then every device at the site receives the profile and acknowledges its version
    And the device at the other site receives nothing
    And no device of the site drifts from the profile

  @live @DM-13 @DM-08
  Scenario Outline: Configuration never carries end-user data
    When the administrator creates a profile with the key "<key>"
    Then the answer is 422 naming the field "values.<key>"

    Examples:
      | key              |
      | contacts.list    |
      | meeting.subject  |
      | user.email       |

  @live @DM-05
  Scenario: Room systems asked for diagnostics upload their own bundles
    Given 2 enrolled devices at the site and 1 enrolled device at another site
    When the administrator requests diagnostics from every device at the site
    Then each device at the site uploads a bundle of its own log, which the administrator downloads
    And the device at the other site receives nothing

  @live @DM-05 @DM-08
  Scenario: A diagnostics bundle holds only diagnosis fields and stays with its enterprise
    Given a deployed and enrolled device
    When the administrator requests diagnostics from the device
    And the device uploads logs with an extra field "screenshot"
    Then the answer is 422 naming the field "screenshot"
    When the device uploads only its ID, MAC, IP address and logs
    Then the administrator can download the bundle
    And an administrator of another enterprise cannot

  @live @DM-05
  Scenario: DM telemetry is kept for its retention period and purged after it
    Given a DM region on a clock the test moves, keeping telemetry 180 days
    And a virtual device that has sent telemetry to it
    When the region's retention job has run 179 days later
    Then the device's telemetry is still stored
    When the region's retention job has run 181 days later
    Then the device's telemetry is gone
