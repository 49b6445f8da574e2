"""What every part of a running node stands on: time, the home folder, file names, the runtime."""
