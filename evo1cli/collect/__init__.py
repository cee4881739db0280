"""Recording demonstrations into v2.1 datasets: from scripted experts in simulation (and, later, robots)."""
