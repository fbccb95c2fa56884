Feature: Simulation: placement and relay failover, run in simulated time
  The simulator drives the meeting service's own placement function and a relay pool with
  failures and automatic replacement. These scenarios read the result records that
  `roomtrust sim run` writes (reports/out/sim/); in a plain test run they make fresh ones.

  @sim @MT-01
  Scenario: Every conference is placed in the optimal region for its initial participants
    Given the simulation results of scenario "sim-call-load"
    Then the results hold placements of conferences
    And every conference went to the region with the least mean latency for its initial participants
    And conferences from Asia, Europe and North America went to asia, eu and na

  @sim @MT-03
  Scenario: A relay failure drops no call and the relay is replaced within minutes
    Given the simulation results of scenario "sim-failover"
    Then at least one relay failed while it carried calls
    And no call was dropped
    And every failed relay was replaced within 10 minutes
