import sys, time
# Stays up; says its arguments.
print(sys.argv[1:], flush=True)
while True:
    time.sleep(1)
