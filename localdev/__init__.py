"""Local stand-ins for the services the function app talks to in Azure."""
