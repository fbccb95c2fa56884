Feature: Media: SRTP through the region's relays, failover, and the PSTN leg
  Every call's media is SRTP through a relay in the conference's region, and the keys travel only
  inside the TLS signaling, handed to a participant once it is admitted. Participants only send
  outbound. When a relay dies, its participants move to another relay without leaving the
  conference, and the region starts a replacement. A phone dials in through the PSTN gateway; its
  leg is the only unencrypted one, and it is marked so.

  Background:
    Given the media region "sa" is running with two relays and a PSTN gateway

  @live @MT-06 @MT-12
  Scenario: A four-party call shows no media and no key in the clear
    Given an enterprise in the media region with the users "Ann, Ben, Cai, Dee"
    And a loopback capture of the media region's signaling and relays is running
    And "Ann" owns a conference that "Ann, Ben, Cai, Dee" join with media
    When everyone talks for 1 second and sends a video frame
    Then everyone hears and sees everyone else
    And the capture shows no media payload and no key material in the clear
    And every captured media packet carries a tag that authenticates under its participant's keys
    And every participant's media flow was opened by the participant, outbound to the relay

  @live @MT-06
  Scenario: Plain RTP reaches nobody and is counted
    Given an enterprise in the media region with the users "Ann, Ben"
    And "Ann" owns a conference that "Ann, Ben" join with media
    When "Ann" sends 5 plain RTP packets to the relay
    Then "Ben" receives none of them
    And the relay has counted 5 more plain RTP packets

  @live @MT-06 @MT-09
  Scenario: A removed participant's keys open nothing sent after the removal
    Given an enterprise in the media region with the users "Mia, Noa, Ola"
    And a loopback capture of the media region's signaling and relays is running
    And "Mia" owns a conference that "Mia, Noa, Ola" join with media
    And everyone keeps talking
    When the moderator removes "Ola"
    Then "Mia" and "Noa" get new keys and still hear each other
    And "Ola" receives nothing after the removal
    And "Ola"'s old keys open none of the media captured after the removal

  @live @MT-03
  Scenario: A relay killed mid-call hands everyone to another relay without dropping the call
    Given an enterprise in the media region with the users "Pia, Quinn, Rui"
    And "Pia" owns a conference that "Pia, Quinn, Rui" join with media
    And everyone keeps talking
    When the relay carrying the call is killed with SIGKILL
    Then everyone is moved to another relay and hears everyone again within 2 seconds of media gap
    And nobody left the conference
    And a replacement relay is running in the media region

  @live @MT-08
  Scenario: A phone dials in through the PSTN gateway, hears the conference and is marked unencrypted
    Given an enterprise in the media region with the users "Sam, Tia"
    And "Sam" owns a conference with the PIN "2468" that "Sam, Tia" join with media
    And "Sam" talks a 440 Hz tone and "Tia" a 660 Hz tone
    When a phone "+15550123" dials in with the PIN "2468" and talks a 1000 Hz tone
    Then the phone hears 440 Hz and 660 Hz but not its own 1000 Hz
    And "Sam" and "Tia" hear the phone's 1000 Hz tone over SRTP
    And the roster marks the phone's leg unencrypted and every other leg encrypted
    When the phone hangs up and "Sam" ends the conference
    Then the call record marks the phone's leg unencrypted and every other leg encrypted
    And a phone dialling in with the PIN "0000" is refused

  @live @MT-16
  Scenario: A recorded three-party call holds both speakers' tones and stays in its region
    Given an enterprise in the media region with the users "Uma, Vic, Wen, Xia"
    And "Uma" owns a conference that "Uma, Vic, Wen" join with media
    And "Uma" talks a 440 Hz tone and "Vic" a 660 Hz tone while "Wen" listens
    When "Wen" records the call for 3 seconds
    Then everyone in the call was told it is recorded by "Wen"
    And the recording downloaded by the administrator plays and sox finds 440 Hz and 660 Hz
    And the recording file is in region "sa"'s storage and nowhere else
    And "Xia", outside the recording's sharing rules, gets 403 for it
