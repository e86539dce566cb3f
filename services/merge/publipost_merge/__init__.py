"""The merge service: mailings, one document per record, the combined print file, regrouping after sending."""
