"""roomtrust: the command line and the glue that fronts the services, fleets, simulations and checks."""
