#!/bin/sh
echo "app on $(cat /base.txt)"
