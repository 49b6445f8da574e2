"""From a file in a clerk's outbox to a sealed, recorded dispatch; and on to sent/."""
