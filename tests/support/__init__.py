"""What tests share: real servers and clients, factories, helpers. Test modules import from
here, never from one another or from conftest."""
