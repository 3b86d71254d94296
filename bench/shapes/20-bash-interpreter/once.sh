# Runs once and exits.
echo done
