#!/bin/sh
# Stays up.
while true; do sleep 1; done
