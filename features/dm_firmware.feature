Feature: Signed and encrypted firmware, staged rollouts
  Room systems boot only software signed with the release key built into their model, and their
  software is encrypted when downloaded, under a key of its own that reaches the device over its
  mutual-TLS command channel. Administrators roll images out in waves; a failure in a wave stops
  the rollout before it spreads.

  Background:
    Given the local stack is running

  @live @MT-05 @DM-05
  Scenario: A signed image is installed to the other slot and booted, wave by wave
    Given a fleet of 4 "MeetingBar A30" room systems online in DM region "us"
    When the administrator uploads a "healthy" image "266.420.0.0"
    And the administrator rolls it out in waves of "1, 100%" with an error threshold of "1"
    Then the rollout completes with waves of sizes "1, 3"
    And every room system runs "266.420.0.0" from its second slot
    And the DM service lists every room system with firmware "266.420.0.0"

  @live @MT-05
  Scenario: A download is ciphertext that only the key from the device's command channel opens
    Given a room system in DM region "us" enrolled with its own certificate, on "273.410.0.3"
    When its administrator rolls out a "MeetingBoard 86" image "273.420.0.0" to it
    Then the room system receives its firmware command over its command channel
    And the download it fetches with its certificate does not hold the image in the clear
    And the key from the command decrypts it to an image signed with the region's release key
    And another room system's certificate cannot fetch that download

  @live @MT-05 @DM-05
  Scenario: An image whose signature was tampered with in the store boots nowhere
    Given a fleet of 4 "MeetingBar A30" room systems online in DM region "us"
    When the administrator uploads a "healthy" image "266.421.0.0"
    And its signature is tampered with in the region's object store
    And the administrator rolls it out in waves of "100%" with an error threshold of "2"
    Then every room system refuses the image as "bad-signature"
    And the rollout is paused at its error threshold
    And no room system left its version

  @live @MT-05 @DM-05
  Scenario: A new version that fails its health check after boot is rolled back by the device
    Given a fleet of 3 "MeetingBar A30" room systems online in DM region "us"
    When the administrator uploads a "failing" image "266.422.0.0"
    And the administrator rolls it out in waves of "100%" with an error threshold of "3"
    Then every room system reports "health-check-failed" and runs its previous version again
    And the rollout is paused at its error threshold
