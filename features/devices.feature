Feature: Virtual room devices: managed models, optional management, the DM switch, preconfigured domains
  Real virtual devices of every managed model power up, run their preconfigured-domain sequence,
  enroll over HTTPS and report over mutual TLS to the DM service; a person at some of them then
  switches the DM connection off. Every connection a device opens is recorded.

  Background:
    Given a fleet with one virtual device of every managed model and one device nobody deployed
    And the fleet ran against DM region "us" of the target, ending with half of its online devices switching DM off

  @live @DM-01
  Scenario: Every managed model has a virtual twin that enrolls and reports
    Then every managed model has a virtual device that enrolled
    And every enrolled virtual device had its heartbeat and telemetry accepted
    And the DM service lists every managed model among the fleet's devices
    And each virtual twin has the capabilities of its model

  @live @DM-02
  Scenario: A device nobody deployed gets no certificate and sends no telemetry
    Then the undeployed device asked to enroll and was refused
    And the undeployed device holds no certificate
    And the recorded connections show no report from the undeployed device
    And the DM service does not list the undeployed device

  @live @DM-03
  Scenario: While the DM connection is switched off the device sends nothing to the DM service
    Then the switched devices had talked to the DM service before the switch
    And the recorded connections show no traffic from the switched devices to the DM service afterwards
    And the devices left switched on are still connected

  @live @DM-12
  Scenario: During boot a device contacts only its preconfigured domains and the DM server
    Then during boot every device contacted only the preconfigured domains and its DM server
    And the connectivity-check and NTP stand-ins answered every device
    And the proxy test site and the vendor links were never contacted
    And every recorded connection was opened by the device
