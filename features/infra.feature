Feature: The cloud stacks keep the infrastructure claims
  Every stack of infra/stacks (prod, staging and ci for each of the three DM regions on Azure and
  the four meeting regions on AWS) is snapshotted under Pulumi mocks into a resource graph:
  types, inputs, parents and the region of each provider. The policy checks run over those
  graphs; a missing property counts as a violation and a check that selects nothing fails. The
  results of every check are kept as evidence.

  Background:
    Given the resource graphs of every cloud stack

  @graph @IN-01 @DM-07 @MT-02 @MT-16
  Scenario: Every resource of a stack is created in that stack's region
    Then every stack passes the "IN-01" check
    And the "dm" stacks run on "azure-native" in exactly the regions "us, eu, au"
    And the "meeting" stacks run on "aws" in exactly the regions "na, sa, eu, asia"
    And there is exactly one stack per environment and region

  @graph @IN-02
  Scenario: Every public endpoint and data-store connection enforces TLS 1.2 or higher
    Then every stack passes the "IN-02" check

  @graph @IN-03 @MT-16
  Scenario: Databases, object storage and backups are encrypted at rest
    Then every stack passes the "IN-03" check

  @graph @IN-04 @DM-07 @MT-16
  Scenario: Recording and log storage is never replicated to another region
    Then every stack passes the "IN-04" check

  @graph @IN-05 @MT-14
  Scenario: Log stores keep 180 days and lifecycle rules delete what is older
    Then every stack passes the "IN-05" check

  @graph @IN-06 @MT-04
  Scenario: Production, staging and CI are separate stacks with separate credentials
    Then every stack passes the "IN-06" check
    And there is exactly one stack per environment and region
    And no credential or account setting is shared between environments

  @graph @IN-07 @MT-03
  Scenario: Every service has health checks and a desired count, so failures are replaced
    Then every stack passes the "IN-07" check

  @graph @IN-08 @MT-03
  Scenario: Configuration databases are backed up and protected from deletion
    Then every stack passes the "IN-08" check

  @graph @MT-12
  Scenario: Only HTTPS and the UDP media ports face the internet
    Then every "meeting" stack passes the "MT-12" check
    And every "dm" stack passes the "MT-12" check

  @graph @MT-16
  Scenario: Recordings are never publicly readable
    Then every "meeting" stack passes the "MT-16" check

  @graph @DM-06
  Scenario: The cloud DM regions run the same service as the self-hosted stack
    Then every "dm" stack runs the DM module that the self-hosted stack runs
    And the self-hosted stack runs that module for every DM region

  @graph @IN-01 @IN-02 @IN-03 @IN-04 @IN-05 @IN-06 @IN-07 @IN-08 @MT-12 @MT-16
  Scenario Outline: The check that guards a claim fails on a graph that breaks it
    Given the "<stack>" graph with <fault>
    Then the "<claim>" check fails on it

    Examples:
      | stack           | fault                                              | claim |
      | prod-meeting-eu | an eu stack that places a resource in a US region  | IN-01 |
      | prod-dm-eu      | a DM storage account in a US location              | IN-01 |
      | prod-dm-au      | a storage account without TLS 1.2                  | IN-02 |
      | prod-dm-us      | a storage account with no TLS setting              | IN-02 |
      | prod-meeting-na | an ALB with an old TLS policy                      | IN-02 |
      | prod-meeting-sa | a database without forced TLS                      | IN-02 |
      | prod-meeting-eu | a bucket without SSE-KMS                           | IN-03 |
      | prod-meeting-asia | a bucket with replication                        | IN-04 |
      | prod-dm-eu      | a geo-replicated storage account                   | IN-04 |
      | prod-meeting-na | a log group with 30-day retention                  | IN-05 |
      | staging-meeting-eu | a provider not pinned to its account            | IN-06 |
      | prod-meeting-eu | a service without health checks                    | IN-07 |
      | prod-dm-au      | a container app without probes                     | IN-07 |
      | prod-meeting-na | signaling replicas without a bus URL               | IN-07 |
      | prod-meeting-na | a bus open to the internet                         | IN-07 |
      | prod-meeting-na | a bus with JetStream                               | IN-07 |
      | prod-meeting-sa | a database without backups                         | IN-08 |
      | prod-meeting-na | SSH open to the internet                           | MT-12 |
      | prod-meeting-eu | a bucket with public access allowed                | MT-16 |
