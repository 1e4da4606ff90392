"""ocs_transfer.input"""
