#!/bin/sh
# Prints Airflow's constraints file ($1) without the lines for the packages that requirements.txt
# ($2) pins directly. The image then installs under Airflow's tested versions for everything
# else, while the project's own pins (the versions its tests ran with) win where the two differ.
# Names compare as pip compares them: case-insensitive, with -, _ and . alike.
set -eu
names=$(grep -v '^[[:space:]]*#' "$2" |
  sed -n 's/^[[:space:]]*\([A-Za-z0-9][A-Za-z0-9._-]*\).*/\1/p' |
  sed 's/[-_.]/[-_.]/g' | paste -sd '|' -)
grep -viE "^(${names})[[:space:]]*==" "$1"
