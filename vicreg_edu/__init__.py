"""vicreg_edu"""
