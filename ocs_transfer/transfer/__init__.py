"""ocs_transfer.transfer"""
