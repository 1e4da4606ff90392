"""ocs_transfer.testing"""
