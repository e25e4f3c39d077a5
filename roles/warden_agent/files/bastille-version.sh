#!/bin/sh
# Prints the installed Bastille version (1.4.x prints it on stderr).
exec bastille -v 2>&1
