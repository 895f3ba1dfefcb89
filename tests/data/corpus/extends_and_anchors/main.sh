#!/bin/sh
echo extended
