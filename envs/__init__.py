"""Gymnasium environments of rmc-agents. Importing this package registers their ids."""
