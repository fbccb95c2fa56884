Feature: Meetings: roles, conferences, lobby, chat, recording, records and retention
  Each meeting region (na, sa, eu, asia) runs as its own process with its own store and storage.
  Conferences are placed near their participants, locked conferences admit only by a moderator's
  action, chat is never stored, recordings stay in their region, and call records and user data
  go 180 days after the contract ends.

  Background:
    Given the meeting regions are running

  @live @MT-01 @MT-02
  Scenario: A conference is created in the region nearest its initial participants and stays there
    Given an enterprise in meeting region "sa" with the users "Paula"
    When "Paula" creates a conference for participants in "brazil, argentina, chile"
    Then the conference is hosted in region "sa"
    And region "eu" does not answer for the conference but names region "sa"
    And no other meeting region stores the conference
    And participants in "germany, uk, spain" are placed in region "eu"
    And participants in "japan, singapore" are placed in region "asia"
    And participants in "us-east, canada" are placed in region "na"

  @live @MT-06
  Scenario: Nobody can switch encryption off
    Given an enterprise in meeting region "sa" with the users "Ulla"
    When the administrator sets "encryption_enabled" to false
    Then the answer is 422 naming the field "encryption_enabled"
    And the enterprise settings have no encryption switch
    And region "sa" refuses plain HTTP and plain WebSocket connections

  @live @MT-09
  Scenario: A locked conference keeps newcomers in the lobby until a moderator decides
    Given an enterprise in meeting region "sa" with the users "Mona, Nick, Eve"
    And "Mona" owns a locked conference and has joined it
    When "Nick" joins the conference
    Then "Nick" waits in the lobby without the roster
    When the moderator admits "Nick"
    Then "Nick" is in the conference and receives the roster
    When "Eve" joins the conference
    And the moderator rejects "Eve"
    Then "Eve" is disconnected and never received the roster or media keys

  @live @MT-09
  Scenario: Fifty simultaneous joins to a locked conference admit nobody by themselves
    Given an enterprise in meeting region "sa" with the users "Mona, Crowd"
    And "Mona" owns a locked conference and has joined it
    When "Crowd" joins the conference 50 times at once
    Then the roster holds only "Mona" and 50 people wait in the lobby

  @live @MT-09
  Scenario: A one-off conference is never listed and cannot be called after it ends
    Given an enterprise in meeting region "sa" with the users "Olga, Pete"
    And "Olga" owns a one-off conference and has joined it
    And "Olga" owns a hidden conference
    Then the directory seen by "Pete" lists neither conference
    When "Olga" ends the conference
    Then "Pete" cannot join the conference because it no longer exists

  @live @MT-09
  Scenario: Moderators mute and remove participants and control their own media
    Given an enterprise in meeting region "sa" with the users "Mona, Nick, Ned"
    And "Mona" owns a conference and has joined it
    When "Nick" joins the conference
    And "Ned" joins the conference
    Then "Nick" may not mute anyone
    When the moderator mutes all participants
    Then "Nick" and "Ned" are told they were muted by "Mona"
    When the moderator turns off her own video
    Then "Nick" sees the moderator's video off
    When the moderator removes "Ned"
    Then "Ned" is disconnected

  @live @MT-10
  Scenario: Revoking a user ends their live session and refuses their next request
    Given an enterprise in meeting region "sa" with the users "Mona, Rita"
    And "Mona" owns a conference and has joined it
    When "Rita" joins the conference
    And the administrator revokes "Rita"
    Then "Rita"'s signaling connection is closed
    And "Rita"'s next request is refused with 401

  @live @MT-10
  Scenario: A room system registers over TLS and authenticates with its certificate
    Given an enterprise in meeting region "sa" with the users "Mona"
    When the administrator registers a room system "Board Room"
    Then the room system is known by its client certificate and may only place calls
    When the administrator revokes the room system
    Then the room system's next request is refused with 401

  @live @MT-11
  Scenario Outline: Each role holds exactly the permissions of the whitepaper
    Given an enterprise in meeting region "na" with the users "Ada"
    When the administrator creates an account with the role "<role>"
    Then that account holds exactly "<permissions>"

    Examples:
      | role              | permissions                                                                                                                                           |
      | user              | call.place_receive, media.self_disable, conference.create, conference.password, conference.hide, conference.participants, conference.mute, chat, live_stream, record |
      | operation_manager | dashboard, member.manage, files.collaboration, statistics, enterprise.settings, teams.access                                                         |
      | meeting_operator  | dashboard, meeting.manage, vmr.manage                                                                                                                 |
      | meeting_manager   | dashboard, meeting.manage, vmr.manage, files.collaboration, statistics                                                                                |

  @live @MT-11
  Scenario: The administrator defines customize roles and is the only one who assigns roles
    Given an enterprise in meeting region "na" with the users "Ada"
    Then the administrator holds "role.assign, dashboard, member.manage, meeting.manage, vmr.manage, files.collaboration, statistics, enterprise.settings, segment.resources, teams.access"
    When the administrator defines a customize role with "dashboard, segment.resources"
    And the administrator creates an account with that customize role
    Then that account holds exactly "dashboard, segment.resources"
    And a customize role with "record" is refused naming the field "permissions.0"
    And an operation manager cannot give anyone the role "meeting_manager"

  @live @MT-11
  Scenario: Segment resources and Teams access gate their endpoints by role
    Given an enterprise in meeting region "na" with the users "Ada"
    When the administrator defines a customize role with "segment.resources, teams.access"
    Then the segment resources and Teams access endpoints answer only the roles holding them

  @live @MT-13 @MT-15
  Scenario: Call records and user data are deleted 180 days after the contract ends, not before
    Given an enterprise in meeting region "eu" whose contract ended 10 days ago, with a finished call
    When retention runs in region "eu" at contract end plus 179 days
    Then the enterprise's call records and accounts are still stored in region "eu"
    When retention runs in region "eu" at contract end plus 181 days
    Then the enterprise's call records and accounts are gone from region "eu"

  @live @MT-13
  Scenario: Call records hold metadata only
    Given an enterprise in meeting region "sa" with the users "Mona, Nick"
    And "Mona" owns a conference and has joined it
    When "Nick" joins the conference
    And "Nick" says "the quarterly numbers are in" in the chat
    And "Mona" ends the conference
    Then the call record lists both accounts with encrypted legs, times and region "sa" and nothing else

  @live @MT-14
  Scenario: Server logs older than 180 days are deleted, younger ones kept
    Given server log files aged 179 and 181 days in region "asia"
    When retention runs in region "asia" now
    Then the log file aged 181 days is gone and the one aged 179 days is kept

  @live @MT-15
  Scenario: Only the listed account fields are stored
    Given an enterprise in meeting region "sa" with the users "Mona"
    When the administrator creates an account with the extra field "phone"
    Then the answer is 422 naming the field "phone"
    And the accounts table of region "sa" has only the listed personal fields
    And every stored password is a salted hash

  @live @MT-16 @MT-02
  Scenario: A recording made in sa stays in sa, and everyone is told who records
    Given an enterprise in meeting region "sa" with the users "Mona, Rosa, Luis"
    And "Mona" owns a conference and has joined it
    When "Rosa" joins the conference
    And "Rosa" starts recording
    And "Luis" joins the conference
    And "Rosa" stops recording
    Then "Mona", "Rosa" and "Luis" were told the call is recorded by "Rosa"
    And the recording file exists only under region "sa" and is encrypted
    And the recording cannot be shared outside the organisation

  @live @MT-17
  Scenario: Chat, recording and live streaming only where the administrator enabled them
    Given an enterprise in meeting region "sa" with the users "Mona"
    And the administrator disables chat, recording and live streaming
    And "Mona" owns a conference and has joined it
    Then "Mona"'s chat, recording and live streaming are refused
    When the administrator enables chat
    Then "Mona" can chat

  @live @MT-18
  Scenario: Chat is stored nowhere once the conference ends
    Given an enterprise in meeting region "sa" with the users "Mona, Nick"
    And "Mona" owns a conference and has joined it
    When "Nick" joins the conference
    And "Nick" says a unique marker in the chat
    And "Mona" ends the conference
    Then the marker appears in no database, log or storage file of any meeting region

  @live @MT-19
  Scenario: Administrative actions are written to the operation log
    Given an enterprise in meeting region "sa" with the users "Mona"
    When the administrator changes the settings, assigns a role and revokes "Mona"
    Then the operation log holds "settings.update, role.assign, account.revoke, account.create, enterprise.register"

  @live @MT-20
  Scenario: Reports, CDR and billing only for the roles that may see them
    Given an enterprise in meeting region "sa" with the users "Mona"
    Then an operation manager and a meeting manager see reports, CDR and billing
    And a user and a meeting operator are refused them
