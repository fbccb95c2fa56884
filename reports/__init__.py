"""Report builders: compliance matrix, simulation plots, load results."""
