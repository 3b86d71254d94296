# Stays up; run by bash.
echo "args: $*"
while true; do sleep 1; done
